"""Pictures inside ``ipywidgets.Output`` panels: the one pattern every explorer follows.

**The pattern.** An explorer owns one ``widgets.Output`` per picture panel and puts
the panels inside its own widget box. Its ``update()`` (called at construction and
from every control's ``observe`` callback) builds fresh figures and calls
``show_in(panel, fig, ...)``. :func:`show_in` *sets the panel's* ``outputs`` *state*
to each figure's own mimebundle, replacing what was there:

- a matplotlib ``Figure`` becomes a PNG (``image/png``), then is closed, so the
  picture does not depend on the kernel's matplotlib backend and nothing leaks;
- a plotly figure becomes its JSON spec under ``application/vnd.plotly.v1+json``,
  which JupyterLab's plotly renderer (``jupyterlab-plotly``, shipped with plotly)
  draws *inside* the panel; ``text/plain`` says what it is elsewhere;
- anything else goes through IPython's formatters (text, HTML, ...).

**Never** ``with out: display(fig)`` and never ``format_display_data(plotly_fig)``:
a plotly figure displays itself through its ``_ipython_display_`` hook, so the
first lands *above* the widget (one stale copy per redraw) and the second leaves
the panel an empty bundle -- the 3D panel looked dead in a browser. Setting the
state is also one ordinary widget message, the same in a browser, under nbval
and under nbclient (output capture by message id can hang headless runners,
jupyter/nbclient#312). :func:`bundle_mimetypes` lets tests check every panel holds
a real picture (``tests/test_explorers.py``; the browser test drives JupyterLab).

Trade-off: each redraw replaces the plotly panel, so a rotation the student gave
the 3D view with the mouse resets to the scene's default camera.
"""

from __future__ import annotations

import base64
import io
import json

PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"


def _is_plotly_figure(obj) -> bool:
    try:
        from plotly.basedatatypes import BaseFigure
    except ImportError:      # plotly is a dependency; without it nothing here is a plotly figure
        return False
    return isinstance(obj, BaseFigure)


def display_bundle(obj) -> dict:
    """A ``display_data`` output dict holding ``obj``'s own picture (see the module docstring)."""
    from matplotlib.figure import Figure

    if isinstance(obj, Figure):
        buf = io.BytesIO()
        obj.savefig(buf, format="png", bbox_inches="tight")
        data = {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"), "text/plain": repr(obj)}
        return {"output_type": "display_data", "data": data, "metadata": {}}
    if _is_plotly_figure(obj):
        spec = json.loads(obj.to_json())           # plain JSON: numpy arrays encoded the way plotly does
        spec["config"] = {"displaylogo": False, "responsive": True}
        n = len(spec.get("data", []))
        data = {PLOTLY_MIMETYPE: spec, "text/plain": f"<plotly figure: {n} traces; shown by JupyterLab's renderer>"}
        return {"output_type": "display_data", "data": data, "metadata": {}}
    from IPython.core.formatters import format_display_data

    data, metadata = format_display_data(obj)
    if not data:
        raise ValueError(f"obj must be something IPython can format into a bundle, got {type(obj).__name__} "
                         "(it displays itself; give its figure instead)")
    return {"output_type": "display_data", "data": data, "metadata": metadata}


def show_in(out, *objs) -> None:
    """Replace what the ``ipywidgets.Output`` ``out`` shows by ``objs``; matplotlib figures are then closed."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    out.outputs = tuple(display_bundle(obj) for obj in objs)
    for obj in objs:
        if isinstance(obj, Figure):
            plt.close(obj)


def bundle_mimetypes(out) -> list[set[str]]:
    """The mimetypes of each non-empty bundle an ``Output`` shows (for tests and sanity checks)."""
    return [set(o.get("data", {})) for o in out.outputs if o.get("data")]
