"""TGI's generate family: its body (``body``), its answers (``responses``), the dialect the driver
calls (``dialect``), its error body (``errors``) and its routes (``routes``)."""
