"""Operations: health, metrics and media routes (`routes.py`), the background loops, the API's load benchmark."""
