"""The demo: a synthetic dataset and an end-to-end run a newcomer can start with one command (``autoseg demo``).

``phantom`` draws one case, ``dataset`` writes the raw dataset, ``settings`` holds what a run does,
``layout`` where it puts things, ``stages`` the steps, ``pipeline`` runs them and ``report`` prints the result.
``synthetic`` is the older, simpler generator the test suites use for small CT-like volumes.
"""
