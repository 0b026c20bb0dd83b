"""Showing pictures inside ``ipywidgets.Output`` panels without output capture.

The usual pattern, ``with out: clear_output(wait=True); display(fig)``, routes the
kernel's output messages into the widget by message id. Headless runners
(nbclient, used by ``make course``) sometimes hang on it after such a cell
(jupyter/nbclient#312; seen here on notebook 02). :func:`show_in` instead sets the
widget's ``outputs`` state: one ordinary widget message, the same in a browser,
under nbval and under nbclient. Matplotlib figures are encoded to PNG here, so the
picture does not depend on the kernel's matplotlib backend.
"""

from __future__ import annotations

import base64
import io


def display_bundle(obj) -> dict:
    """A ``display_data`` output dict for a matplotlib figure (PNG) or anything IPython can format."""
    from matplotlib.figure import Figure

    if isinstance(obj, Figure):
        buf = io.BytesIO()
        obj.savefig(buf, format="png", bbox_inches="tight")
        data = {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"), "text/plain": repr(obj)}
        return {"output_type": "display_data", "data": data, "metadata": {}}
    from IPython.core.formatters import format_display_data

    data, metadata = format_display_data(obj)
    return {"output_type": "display_data", "data": data, "metadata": metadata}


def show_in(out, *objs) -> None:
    """Replace what the ``ipywidgets.Output`` ``out`` shows by ``objs``; matplotlib figures are then closed."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    out.outputs = tuple(display_bundle(obj) for obj in objs)
    for obj in objs:
        if isinstance(obj, Figure):
            plt.close(obj)
