"""SynthAU: procedural face videos with known facial action units (numpy only)."""
