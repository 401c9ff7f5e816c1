"""Client SDKs: what an agency (sender, CAP import) or a recipient (inbox, verification) runs."""
