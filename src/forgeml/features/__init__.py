"""forgeml.features"""
