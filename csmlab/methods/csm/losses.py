"""CSM's losses now live in :mod:`csmlab.surface_losses` (shared with ACSM); every name is kept here."""

from csmlab.surface_losses import (  # noqa: F401
    _check_image,
    _points_per_camera,
    check_cameras,
    cycle_error,
    cycle_loss,
    expected,
    flatten_cameras,
    mask_bce,
    mask_render_loss,
    masked_mean,
    pixel_centres_ndc,
    project_points,
    render_template,
    rotation_diversity,
    sample_at_ndc,
    usage_entropy,
    visibility_error,
    visibility_loss,
)
