"""Routine screening rounds with zero reports (常态化排查、零报告): every grassroots unit of a region answers each
round, "no risk found" included, and the federations see who has not answered.

A sub-domain of intake with the same rooms: `api` (routes), `schemas`, `service` (rules, flush only), `repository`
(every query), `models` (tables on intake's Base), `worker` (the due notice), `metrics`, `regions` (pure).
"""
