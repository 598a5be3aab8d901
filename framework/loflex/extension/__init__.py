"""How plugins extend loflex: the hook specifications, the plugin manager, the component
registry and ``assemble``, pretrained models shipped in plugins, the contract checks
plugin authors run (``testing``) and the ``loflex new plugin`` templates.
"""
