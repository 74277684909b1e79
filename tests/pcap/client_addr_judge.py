#!/usr/bin/env python3
"""lb_judge.py (make / judge, same arguments and verdict) over the table of
client_addr_cases.py instead of lb_cases.py: tests/pcap_client_addr.rs."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import client_addr_cases  # noqa: E402
import lb_judge  # noqa: E402

lb_judge.lb_cases = client_addr_cases

if __name__ == "__main__":
    lb_judge.main()
