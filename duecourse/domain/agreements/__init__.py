"""What agents agree with borrowers: instalment plans, settlements, assignment."""
