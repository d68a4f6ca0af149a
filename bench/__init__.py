"""`make bench`: tenant-scale benchmarks against the emulator."""
