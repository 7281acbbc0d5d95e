"""The planner's parts, one job each; `modelformats.planner.plan` is the entry point that runs them.

route.py      Route: one way of serving the model (weights x engine), and how routes rank
session.py    PlanSession: one plan's inputs and the facts its routes share, computed once
routes.py     every route of a detected repo, derived from its strategy's serving facts
converted.py  routes that serve the weights after `modelformats convert` rewrites them
fp8.py        online FP8 of a loadable route's 16-bit weights
assemble.py   ranked routes -> DeploymentPlan (downloads, joins, alternatives)
explain.py    the plan's explanation lines and each alternative's reason
"""
