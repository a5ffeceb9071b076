"""logsense: log analysis and error correlation for KVM hosts."""

__version__ = "0.1.0"
