"""forgeml.evaluation"""
