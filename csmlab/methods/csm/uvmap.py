"""The template UV map now lives in :mod:`csmlab.geometry.uvmap` (shared with ACSM); names kept here."""

from csmlab.geometry.uvmap import TemplateUV, closest_point_on_mesh, ray_face_barycentrics  # noqa: F401
