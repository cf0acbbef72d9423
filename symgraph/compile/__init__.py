"""``function()``: clone -> rewrite -> link."""
