"""The fleet simulator: the 77 provinces' cameras, faults, selections and project submissions
over simulated time, published to Kafka or through the gateway (`cctv simulate`)."""
