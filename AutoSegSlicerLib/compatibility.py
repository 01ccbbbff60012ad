"""Which Slicer AutoSeg runs in, checked before anything imports AutoSegCore.

AutoSegCore needs Python 3.10 or later, which Slicer ships from 5.10 on (5.8 has Python 3.9). The module
files and AutoSegSlicerLib import nothing from AutoSegCore at load time and parse under Python 3.9, so in
an older Slicer each module opens with this explanation instead of failing with a traceback.
"""

import sys

MINIMUM_PYTHON = (3, 10)
MINIMUM_SLICER = "5.10"
#: The Python this Slicer runs (a module attribute so tests can stand in for an older Slicer).
RUNNING_PYTHON = tuple(sys.version_info[:2])


def unsupportedSlicerMessage():
    """None in a supported Slicer, otherwise what the user should do instead."""
    if RUNNING_PYTHON >= MINIMUM_PYTHON:
        return None
    return ("AutoSeg needs 3D Slicer {slicer} or later (Python {minimum} or later); this Slicer runs Python {running}. "
            "Install the current Slicer release from https://download.slicer.org, then install the AutoSeg extension "
            "there from the Extensions Manager.").format(
        slicer=MINIMUM_SLICER, minimum=".".join(map(str, MINIMUM_PYTHON)), running=".".join(map(str, RUNNING_PYTHON)))


def requireSupportedSlicer():
    """Raise RuntimeError with :func:`unsupportedSlicerMessage` in an unsupported Slicer."""
    message = unsupportedSlicerMessage()
    if message:
        raise RuntimeError(message)


def showUnsupportedSlicer(layout):
    """Add the explanation to a module panel's ``layout``; True when the module cannot run here."""
    message = unsupportedSlicerMessage()
    if not message:
        return False
    import qt

    label = qt.QLabel(message)
    label.wordWrap = True
    layout.addWidget(label)
    return True
