"""acd: a contact-centre ACD and routing engine.

The routing core (``acd.core``) is a sans-IO state machine; ``acd.replay``
plays scenarios through it in virtual time; the CLI is ``acd.cli``.
"""

__version__ = "0.1.0"
