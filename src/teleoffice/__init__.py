"""teleoffice: a SIP PBX with a web portal and telecommuter mode."""

__version__ = "0.1.0"
