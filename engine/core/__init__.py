"""The ground floor every experiment family uses: configs with bounds and the cache key, the live
record of a job, schedules, exact reductions, metrics, sparsity measures, the claims base, torch's random draws.
"""
