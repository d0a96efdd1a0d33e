"""What the audit pollers (Obot, AxonFlow) share: the durable checkpoint and the poll loop."""
