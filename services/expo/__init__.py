"""Expo service: the digital cloud expo, overseas buyers and purchase intents."""
