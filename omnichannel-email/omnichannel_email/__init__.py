"""Email for omnichannel: customers write from any mail client, agents answer from the
inbox, and the answers arrive threaded in the customer's own mail client."""
