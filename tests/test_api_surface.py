"""The public API surface: removing or renaming a public name must be a deliberate change (update this list)."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "freqdense": [
        "__version__",
        "create_model",
        "list_models",
        "load_config",
    ],
    "freqdense.ops": [
        "OneSidedDifferences",
        "WarpResult",
        "ambiguity_map",
        "auto_blur",
        "auto_blur_weight",
        "backproject",
        "carafe",
        "carafe_reference",
        "carafe_unfold",
        "dct2d",
        "dct_matrix",
        "depth_to_hha",
        "estimate_gravity",
        "fft_frequencies",
        "forward_gradient_magnitude",
        "frequency_shells",
        "gaussian_blur2d",
        "gaussian_kernel1d",
        "gaussian_kernel2d",
        "hamming2d",
        "idct2d",
        "normalize_kernels",
        "one_sided_differences",
        "onesided_multiplicity",
        "power_profile",
        "power_spectrum2d",
        "project",
        "shell_reduce",
        "spectrum2d",
        "surface_normals",
        "two_sided_gradient_magnitude",
        "warp",
    ],
    "freqdense.nn": [
        "AttentionCrossFusion",
        "DualPreInteraction",
        "FeatureRecalibration",
        "FlowAlignment",
        "FreqFusion",
        "FreqFusionOutput",
        "FrequencyDisentanglement",
        "FrequencyOutput",
        "LocalSimGuidedSampler",
        "MultiTaskDistillation",
        "PreInteraction",
        "PreInteractionOutput",
        "RecalibrationOutput",
        "SABlock",
        "SEBlock",
        "flow_warp",
    ],
    "freqdense.losses": [
        "AmbiguityMask",
        "AutoBlur",
        "EdgeAwareSmoothness",
        "LocalConsistencyLoss",
        "LossImages",
        "MinReprojection",
        "PhotometricLoss",
        "PhotometricLossOutput",
        "ambiguity_mask",
        "local_consistency_loss",
        "min_reprojection",
        "photometric_error",
        "smoothness_loss",
        "ssim",
        "warp_with_grid",
    ],
    "freqdense.metrics": [
        "BoundaryFScore",
        "ConfusionMatrix",
        "DEFAULT_DELTA_M_METRICS",
        "DEPTH_CROPS",
        "DEPTH_METRIC_NAMES",
        "DEPTH_PROTOCOLS",
        "DepthMetrics",
        "HIGHER_IS_BETTER",
        "Metric",
        "crop_mask",
        "delta_m",
        "delta_m_terms",
    ],
    "freqdense.spectral": [
        "BlockwiseAnnotation",
        "CESpectrum",
        "DatasetSpectrum",
        "SpectralGradient",
        "SpectrumAccumulator",
        "TruncatedDecoder",
        "block_labels",
        "blockwise_annotation",
        "ce_spectrum",
        "label_energy_spectrum",
        "oracle_logits",
        "plot_ce_spectrum",
        "plot_relative_iou",
        "plot_spectral_gradient",
        "relative_discrepancy",
        "resize_to_grid",
        "run_at_grid",
        "spectral_gradient",
        "truncate_decoder",
        "truncated_ce",
    ],
    "freqdense.tasks": [
        "DepthEstimation",
        "MetricSet",
        "SelfSupervisedDepth",
        "SemanticSegmentation",
        "Task",
        "TaskPart",
        "build_task",
        "depth_loss",
    ],
    "freqdense.config": [
        "DataConfig",
        "EvalConfig",
        "ExperimentConfig",
        "ModelConfig",
        "OptimConfig",
        "PruneConfig",
        "ScheduleConfig",
        "TaskConfig",
        "TrainConfig",
        "build_config",
        "config_to_dict",
        "list_shipped_configs",
        "load_config",
        "load_raw_config",
        "parse_overrides",
    ],
    "freqdense.data": [
        "DATASETS",
        "create_dataset",
        "list_datasets",
    ],
    "freqdense.models": [
        "MODELS",
        "create_model",
        "list_models",
        "register_model",
    ],
    "freqdense.pruning": [
        "ConstantInputConv2d",
        "SoftFilterPruner",
        "default_exclude",
        "encoder_decoder_scopes",
        "filter_norms",
        "filters_to_prune",
        "find_chains",
        "num_pruned_filters",
        "prune_checkpoint",
        "pruned_model",
        "pruned_structure",
        "remove_pruned_filters",
    ],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names_exist_and_are_exported(module):
    mod = importlib.import_module(module)
    exported = set(mod.__all__)
    missing = sorted(set(PUBLIC[module]) - exported)
    assert not missing, f"{module} no longer exports {missing}"
    for name in PUBLIC[module]:
        assert hasattr(mod, name), f"{module}.{name} is in __all__ but not defined"


def test_top_level_stays_small():
    import freqdense

    assert len(freqdense.__all__) <= 8
