"""Background work: jobs (periodic or continuous) and event subscribers, run by the job
runner (`omnichannel worker`, or the one `omnichannel serve` starts), never in a web request.
"""
