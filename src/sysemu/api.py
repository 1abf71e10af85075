"""The Python API, public name of sysemu.sandbox.api (see its docstring):

    from sysemu.api import Sandbox
    pytest_plugins = ["sysemu.api"]         # the `sandbox` fixture
"""
from sysemu.sandbox import api as _api
from sysemu.sandbox.api import (Process, Sandbox, SandboxError,  # noqa: F401
                                sandbox_fixture, sysemu_command)

if "sandbox" in vars(_api):
    sandbox = _api.sandbox


def __getattr__(name: str):
    # `pytest_sandbox`: looked up lazily, as in sysemu.sandbox.api (pytest takes every
    # pytest_* attribute of a plugin module for a hook).
    return getattr(_api, name)
