"""TEST DOUBLE of the project's ``training`` package: only ``python -m training retrain`` (see ``__main__``)."""
