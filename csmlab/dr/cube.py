"""Cube-map texturing (boundary_mode='cube'): not in the twin yet."""


def texture_cube(*args):
    raise NotImplementedError("boundary_mode='cube' (cube-map textures) is left out of csmlab's "
                              "PyTorch twin for now; use nvdiffrast on a CUDA device for cube maps")
