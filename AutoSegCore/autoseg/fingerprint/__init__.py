"""The dataset fingerprint: spacings, cropped shapes and foreground intensity statistics."""
