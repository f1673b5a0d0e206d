"""forgeml.tuning"""
