"""Voice of the customer: surveys after every contact, honest scores with their uncertainty, scorecards and reports."""
