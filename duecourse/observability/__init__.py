"""What operations watch: metrics and traces."""
