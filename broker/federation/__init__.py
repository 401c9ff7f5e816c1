"""Regional federation: peers declared in the policy set, and what may cross to them (issue 20).

agreements, crossing, explain and origin are pure; forward and receive are the use cases that
send a notice to a peer and take one from it.
"""
