"""Local fakes of the Azure and Power Platform APIs, for tests, the demo and benchmarks. Never deployed."""
