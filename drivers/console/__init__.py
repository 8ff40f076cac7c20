"""The local web console: officials write, hear, schedule and prove bulletins; everyone sees the box's state."""
