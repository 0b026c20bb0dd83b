"""csmlab: learning the 3D structure of object categories from 2D images.

A thin helper library behind the course notebooks. See ``docs/design.md``
for the layering: config -> geometry -> dr -> render -> data -> train/metrics
-> nets (pretrained backbones) -> methods -> viz.
"""

__version__ = "0.1.0"
