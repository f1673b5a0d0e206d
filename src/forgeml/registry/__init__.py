"""forgeml.registry"""
