"""Install what AutoSeg needs inside Slicer on first use, never replacing Slicer's numpy/SimpleITK.

Running a model (``purpose="inference"``) needs no PyTorch: the OpenVINO engine is installed with pip.
Training (``purpose="training"``) needs torch, which comes from the PyTorch extension (``PyTorchUtils``),
which picks the build matching the GPU; everything else is installed with ``slicer.util.pip_install`` under
a constraints file that pins the installed numpy, SimpleITK and torch (see
``autoseg.slicer_support.dependencies``).
"""

import importlib
import logging
import os
import tempfile

import slicer
from slicer.i18n import tr as _


def dependenciesMissing(purpose="training"):
    """Human-readable list of what ``purpose`` ("inference" or "training") still needs (empty: it can run)."""
    from autoseg.slicer_support.dependencies import (
        TORCH_REQUIREMENT,
        missing_requirements,
        needs_torch,
        requirements_for,
        torch_missing,
    )

    missing = []
    if needs_torch(purpose) and torch_missing():
        missing.append(f"torch{TORCH_REQUIREMENT} (through the PyTorch extension)")
    missing += missing_requirements(requirements_for(purpose))
    return missing


def ensureDependencies(requester="AutoSeg", askConfirmation=True, purpose="training"):
    """Install missing packages; returns True when everything is available afterwards.

    Raises ``RuntimeError`` with the fix when the PyTorch extension is absent or an install fails.
    """
    missing = dependenciesMissing(purpose)
    if not missing:
        return True
    if askConfirmation and not slicer.util.confirmOkCancelDisplay(
        _("{requester} needs these Python packages, which will be downloaded and installed now "
          "(this can take several minutes):\n\n{packages}").format(requester=requester, packages="\n".join(missing)),
        windowTitle=_("Install AutoSeg dependencies"),
    ):
        return False
    from autoseg.slicer_support.dependencies import needs_torch, torch_missing

    with slicer.util.WaitCursor():
        if needs_torch(purpose) and torch_missing():
            _installTorch()
        _pipInstallMissing(purpose)
    importlib.invalidate_caches()
    still = dependenciesMissing(purpose)
    if still:
        raise RuntimeError(
            _(
                "These packages are still missing after the installation: {packages}. See the Python "
                "console for pip's messages; restarting Slicer may help."
            ).format(packages=", ".join(still))
        )
    return True


def _installTorch():
    try:
        import PyTorchUtils
    except ModuleNotFoundError as err:
        raise RuntimeError(_("AutoSeg needs the PyTorch extension. Install 'PyTorch' from the Extensions Manager, "
                             "restart Slicer, and try again.")) from err
    from autoseg.slicer_support.dependencies import TORCH_REQUIREMENT

    torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
        askConfirmation=False, torchVersionRequirement=TORCH_REQUIREMENT
    )
    if torch is None:
        raise RuntimeError(_("PyTorch was not installed. Use the PyTorch Utils module to install it, then try again."))


def _pipInstallMissing(purpose):
    from autoseg.slicer_support.dependencies import (
        missing_requirements,
        pip_install_arguments,
        protected_constraints,
        requirements_for,
    )

    missing = missing_requirements(requirements_for(purpose))
    if not missing:
        return
    handle, constraintsFile = tempfile.mkstemp(prefix="autoseg-constraints-", suffix=".txt")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write("\n".join(protected_constraints()) + "\n")
        logging.info("AutoSeg: installing %s", ", ".join(missing))
        slicer.util.pip_install(pip_install_arguments(missing, constraintsFile))
    finally:
        os.remove(constraintsFile)


def setUpDependencyPanel(frame, label, button, requester, purpose="training"):
    """Show ``frame`` (with what is missing in ``label``) while packages ``purpose`` needs are missing; ``button``
    installs them."""

    def refresh():
        missing = dependenciesMissing(purpose)
        frame.visible = bool(missing)
        label.text = _("Missing Python packages: {packages}").format(packages=", ".join(missing))

    def install():
        with slicer.util.tryWithErrorDisplay(_("Installing AutoSeg's dependencies failed."), waitCursor=True):
            ensureDependencies(requester, purpose=purpose)
        refresh()

    button.clicked.connect(install)
    refresh()
