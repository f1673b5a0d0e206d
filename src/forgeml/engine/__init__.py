"""forgeml.engine"""
