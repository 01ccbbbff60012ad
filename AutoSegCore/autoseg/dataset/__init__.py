"""Raw datasets: dataset.json, case discovery, integrity checks, splits and converters."""
