# Put first on PYTHONPATH by test_launcher.py: hides an installed PyTorch, so the launcher's
# path without PyTorch (the simulated device) is what those tests exercise on every machine.
raise ImportError("PyTorch hidden by tests/python/hide_torch")
