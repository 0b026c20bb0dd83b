"""Geometry: meshes, rotations, cameras, image coordinates and sphere UV maps.

This layer knows nothing of rendering. Conventions are in each module's docstring.
"""

from .camera import (
                     ORTHO_Z_SCALE,
                     OrthoCamera,
                     ndc_to_pixel,
                     ortho_clip,
                     ortho_depth,
                     ortho_project,
                     perspective_clip,
                     pixel_to_ndc,
)
from .mesh import Mesh, check_verts_faces, edges, face_normals, icosphere, vertex_normals
from .ortho_fit import (
                     affine_to_rotation,
                     fit_affine,
                     fit_scale_translation,
                     flip_negative_scale,
                     mirror_rotation,
                     procrustes_init,
)
from .rotations import (
                     angle_to_bin,
                     axis_angle_to_matrix,
                     axis_angle_to_quaternion,
                     azel_to_matrix,
                     bin_to_angle,
                     matrix_to_axis_angle,
                     matrix_to_azel,
                     matrix_to_quaternion,
                     quaternion_multiply,
                     quaternion_to_axis_angle,
                     quaternion_to_matrix,
                     random_rotation,
                     rotation_angle_deg,
)
from .sphere import sphere_to_uv, uv_to_sphere

__all__ = [
    "Mesh", "icosphere", "edges", "face_normals", "vertex_normals", "check_verts_faces",
    "quaternion_to_matrix", "matrix_to_quaternion", "axis_angle_to_matrix", "matrix_to_axis_angle",
    "quaternion_to_axis_angle", "axis_angle_to_quaternion", "quaternion_multiply",
    "azel_to_matrix", "matrix_to_azel", "rotation_angle_deg", "random_rotation",
    "angle_to_bin", "bin_to_angle",
    "OrthoCamera", "ortho_project", "ortho_depth", "ortho_clip", "perspective_clip", "ORTHO_Z_SCALE",
    "pixel_to_ndc", "ndc_to_pixel", "sphere_to_uv", "uv_to_sphere",
    "fit_scale_translation", "fit_affine", "affine_to_rotation", "procrustes_init", "flip_negative_scale",
    "mirror_rotation",
]

from .arap import arap_energy, arap_rotations, nearest_rotations  # noqa: E402
from .laplacian import laplacian_energy, laplacian_weights  # noqa: E402

__all__ += ["arap_energy", "arap_rotations", "nearest_rotations", "laplacian_energy", "laplacian_weights"]

from .uvmap import TemplateUV, closest_point_on_mesh, ray_face_barycentrics  # noqa: E402

__all__ += ["TemplateUV", "closest_point_on_mesh", "ray_face_barycentrics"]
