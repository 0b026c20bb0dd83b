"""``make lab``: JupyterLab on ``notebooks/``, its kernels on Unix sockets like ``make course``'s.

``python -m csmlab.lab [jupyter lab arguments]``. The kernel settings are
:func:`csmlab.course.kernel_config`: ipykernel >= 7.4 warns in every notebook that a TCP
kernel without CurveZMQ keys can be overheard, and a local lab needs no network port for
its kernels. The browser still reaches the server over HTTP as usual.
"""

from __future__ import annotations

import sys

from csmlab.course import kernel_config


def kernel_flags() -> list[str]:
    """:func:`kernel_config` as command-line flags (a ``config=`` given to ``LabApp`` never
    reaches the server that owns the kernels)."""
    return [f"--{section}.{name}={value}" for section, traits in kernel_config().items()
            for name, value in traits.items()]


def main(argv=None) -> int:
    from jupyterlab.labapp import LabApp

    LabApp.launch_instance(argv=kernel_flags() + list(sys.argv[1:] if argv is None else argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
