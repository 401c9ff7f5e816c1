"""Regional federation: peers declared in the policy set, and what may cross to them (issue 20).

Nothing is forwarded yet: these modules decide and explain, they do not send.
"""
