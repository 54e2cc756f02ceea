"""One `evaluate.Metric` per file, so that `evaluate.load("<path>/fid.py")` also works; see `load_metric`."""
