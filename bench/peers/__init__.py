"""Python peers: the same persist-and-deliver work on the stacks users would pick instead."""
