"""What every provider of the local cloud shares, written once: AWS-shaped errors, paging, time, ids."""
