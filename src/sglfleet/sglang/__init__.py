"""SGLang's launch profile: the `python -m sglang.launch_server` flags as a typed model
(profile.py: argv, docker run) and the rules about which flag combinations work (rules.py).
Used by the engines (to launch), the planner (to plan) and config (`sglang:` blocks); it
imports none of them."""
