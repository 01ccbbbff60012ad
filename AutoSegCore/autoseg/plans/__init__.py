"""The plans (``nnUNetPlans.json``): configurations, architectures and the feature-map model behind the
planner's memory estimate. Everything that reads plans (preprocessing, network, training, inference)
depends on this model, never on the planner (``autoseg.planning``) that writes them."""
