"""Reports of an experiment: a self-contained HTML page and a terminal summary."""

from transferlab.report.html import write_report
from transferlab.report.terminal import print_summary

__all__ = ["print_summary", "write_report"]
