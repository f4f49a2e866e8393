"""Item encoders (text, image, CLIP, aligned, audio, video) and the feature store."""
