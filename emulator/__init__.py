"""Local fakes of the Azure and Power Platform APIs, for tests, the demo and benchmarks. Never deployed.

from emulator import Emulator
with Emulator() as emu:
    os.environ.update(emu.env)   # the real SDKs now talk to the emulator
"""

from emulator.core import Emulator

__all__ = ["Emulator"]
